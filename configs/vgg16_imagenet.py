"""VGG configuration D (vgg16) on ImageNet with the paper's recipe: see configs/vgg_imagenet.py.

Pre-initialised from a trained configuration A: pass its workdir,
  --config.init_from=runs/vgg11_imagenet
(without it, the run starts from the paper's N(0, 0.01) for every layer; with
--config.model_options.init=xavier, from Glorot initialisation as the paper's later note).
"""
from configs import vgg_imagenet


def get_config():
  return vgg_imagenet.get_config("vgg16")
