"""Plain-56 on CIFAR-10: ResNet-56 without its shortcuts, for the degradation experiment.

Source: He et al. (2016), section 4.2 and Figure 6: the plain nets are trained with the
ResNets' recipe (configs/resnet_cifar.py); the deeper plain net has the higher training
error (plain-56 above plain-20), while ResNet-56 trains below ResNet-20
(configs/resnet56_cifar.py is the pair's other half).
Expected: the degradation of Figure 6 (left): plain-56's training and test error above
plain-20's throughout training, where ResNet-56's are below ResNet-20's (Figure 6, middle).
"""
from configs import resnet_cifar


def get_config():
  return resnet_cifar.get_config("plain56")
