"""AlexNet on ImageNet, the 2012 paper's recipe (single-tower form).

Source: Krizhevsky, Sutskever, Hinton (2012), sections 4-5: SGD batch 128, momentum 0.9,
weight decay 5e-4, lr 0.01 divided by 10 when validation error stops improving (three
times), about 90 epochs; weights N(0, 0.01), bias 1 in conv2, conv4, conv5 and the hidden
dense layers; dropout 0.5; 224 crops of 256 images, flips, PCA lighting (sigma 0.1); the
paper's local response normalisation.
Expected: top-1 error 40.7% (one network, 10-crop testing: eval_protocol "ten_crop", the
four corner and the centre 224 crops of the central 256x256 square and their flips; a
single centre crop is about 1-2 points worse).
"""
from configs import imagenet


def get_config():
  config = imagenet.get_config()
  config.model = "alexnet"
  config.model_options.init = "paper"
  config.model_options.lrn = True
  config.train_preprocess = "alexnet"
  config.pca_lighting_std = 0.1
  config.batch_size = 128
  config.num_epochs = 90
  config.optimizer = "sgd"
  config.learning_rate = 0.01
  config.momentum = 0.9
  config.weight_decay = 5e-4
  config.schedule = "constant"
  config.plateau_patience = 3
  config.plateau_factor = 0.1
  config.plateau_max_reductions = 3
  config.eval_protocol = "ten_crop"
  return config
