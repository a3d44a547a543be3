"""GoogLeNet (Inception v1) on ImageNet, the paper's recipe (Szegedy et al. 2014, section 6).

The paper's network (model option variant="paper", as BVLC's bvlc_googlenet): no batch norm,
local response normalisation, the 5x5 convolutions, dropout 0.4 and the auxiliary heads of
section 5. --config.model_options.variant=torchvision trains torchvision's batch-norm form
instead (the one its pretrained weights convert to).

Asynchronous SGD with momentum 0.9, the learning rate decreased by 4% every 8 epochs,
Polyak averaging of the parameters for evaluation, the two auxiliary classifiers' losses
weighted 0.3, Inception crops (8-100% of the area, aspect ratio 3/4-4/3) and flips.
The paper gives no base learning rate, batch size or weight decay; these follow BVLC's Caffe
reproduction (lr 0.01 at batch 32, weight decay 2e-4), the lr scaled linearly to batch 256,
and about 60 epochs (its 2.4M iterations at batch 32).
Expected: top-5 error 10.07% for one model evaluated on one crop (the paper's Table 3);
torchvision's GoogLeNet reaches 69.8% top-1 / 89.5% top-5 with a single centre crop.
"""
from configs import imagenet


def get_config():
  config = imagenet.get_config()
  config.model = "googlenet"
  config.model_options.variant = "paper"
  config.train_preprocess = "inception"
  config.crop_area_range = (0.08, 1.0)
  config.crop_aspect_range = (3 / 4, 4 / 3)
  config.batch_size = 256
  config.num_epochs = 60
  config.optimizer = "sgd"
  config.learning_rate = 0.08
  config.momentum = 0.9
  config.weight_decay = 2e-4
  config.schedule = "exponential"
  config.lr_decay_factor = 0.96
  config.lr_decay_every_epochs = 8
  config.aux_loss_weight = 0.3
  config.ema_decay = 0.9999  # Polyak averaging
  return config
