"""ResNet-101 on ImageNet with the paper's recipe: see configs/resnet_imagenet.py."""
from configs import resnet_imagenet


def get_config():
  return resnet_imagenet.get_config("resnet101")
