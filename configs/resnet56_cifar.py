"""ResNet-56 on CIFAR-10 with the paper's section 4.2 recipe: see configs/resnet_cifar.py."""
from configs import resnet_cifar


def get_config():
  return resnet_cifar.get_config("resnet56")
