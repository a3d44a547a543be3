"""ResNets on ImageNet, the paper's recipe (He et al. 2016, section 3.4).

SGD batch 256, lr 0.1 divided by 10 at epochs 30 and 60, 90 epochs (the paper: 60e4
iterations, lr /10 when the error plateaus), momentum 0.9, weight decay 1e-4, no dropout;
scale augmentation (shorter side uniform in [256, 480]), random 224 crops, flips, the
standard colour augmentation, per-pixel mean subtraction.
Expected, top-1 error (the paper's Tables 2 and 3, 10-crop testing: eval_protocol
"ten_crop"): ResNet-34 (option B) 24.52%, ResNet-50 22.85%, ResNet-101 21.75%, ResNet-152
21.43%; ResNet-18 27.88% (Table 2). The paper's fully convolutional multi-scale results
(Table 4) are --config.eval_protocol=multi_scale
--config.eval_scales="(224, 256, 384, 480, 640)". torchvision's single-crop references:
69.76 / 73.31 / 76.13 / 77.37 / 78.31% top-1 for ResNet-18/34/50/101/152
(--config.eval_protocol=center).
"""
from configs import imagenet

PAPER_TOP1_ERROR = {"resnet18": 27.88, "resnet34": 24.52, "resnet50": 22.85,
                    "resnet101": 21.75, "resnet152": 21.43}


def get_config(model: str = "resnet50"):
  config = imagenet.get_config()
  config.model = model
  config.train_preprocess = "vgg"
  config.vgg_scale_range = (256, 480)
  config.batch_size = 256
  config.num_epochs = 90
  config.optimizer = "sgd"
  config.learning_rate = 0.1
  config.momentum = 0.9
  config.weight_decay = 1e-4
  config.schedule = "piecewise"
  config.lr_decay_epochs = (30, 60)
  config.lr_decay_factor = 0.1
  config.eval_protocol = "ten_crop"
  return config
