"""ResNet-18 (CIFAR variant) on CIFAR-10 with Adam, the optimiser of the seeds' CIFAR code.

Source: seeds 000 and 001 train their CIFAR-10 networks with Adam lr 1e-3; this config
puts that optimiser on configs/resnet18_cifar.py's network and data (batch 128, random crop
with 4-pixel padding and horizontal flip, per-channel normalisation), for 100 epochs. The
seeds' own networks and data handling: configs/resnet18_blog_cifar.py (001) and
configs/resnet_blog_small_cifar.py (000).
Expected: about 0.90 test accuracy, the number seed 001 gives for its own network.
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
