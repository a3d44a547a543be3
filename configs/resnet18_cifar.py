"""ResNet-18 (CIFAR variant) on CIFAR-10: the README's headline, with the standard strong recipe.

Source: the CIFAR adaptation of ResNet-18 that most reproductions train (3x3 stride-1
stem, no max-pool, torchvision's four stages: 11,173,962 parameters). The seeds' own CIFAR
networks are other, smaller ones: seed 001's "ResNet18" (configs/resnet18_blog_cifar.py)
and seed 000's two-block net (configs/resnet_blog_small_cifar.py). This config uses the recipe the field reports about 95% with (kuangliu/pytorch-cifar and
most reproductions): SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, cosine
decay over 200 epochs, 4-pixel pad + random 32x32 crop + horizontal flip, per-channel
mean/std normalisation.
Expected: about 0.95 test accuracy after 200 epochs.
See configs/cifar10.py for the data.
"""
from configs import cifar10


def get_config():
  config = cifar10.get_config()
  config.model = "resnet18_cifar"
  config.num_epochs = 200
  config.optimizer = "sgd"
  config.learning_rate = 0.1
  config.momentum = 0.9
  config.weight_decay = 5e-4
  config.schedule = "cosine"
  return config
