"""ResNet-18 (CIFAR variant) on CIFAR-10 with the seeds' own recipe.

Source: seeds 000 and 001 (PyTorch): Adam lr 1e-3, batch 128, random crop with 4-pixel
padding and horizontal flip, per-channel normalisation; they report about 0.90 test
accuracy (the number of epochs varies between the two; this config uses 100).
"""
from configs import resnet18_cifar


def get_config():
  config = resnet18_cifar.get_config()
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  config.weight_decay = 0.0
  config.schedule = "constant"
  config.num_epochs = 100
  return config
