"""VGG configuration A (vgg11) on ImageNet with the paper's recipe: see configs/vgg_imagenet.py.

"""
from configs import vgg_imagenet


def get_config():
  return vgg_imagenet.get_config("vgg11")
