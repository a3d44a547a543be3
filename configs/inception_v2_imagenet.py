"""BN-Inception (Inception-v2) on ImageNet, the batch-normalisation paper's BN-x30 recipe.

Source: Ioffe & Szegedy (2015), section 4.2: GoogLeNet's recipe changed as BN allows —
the learning rate 30 times the Inception baseline's 0.0015 (0.045), its exponential decay
6 times faster (x0.96 every 8/6 epochs), no dropout, L2 weight decay divided by 5, no local
response normalisation, Inception crops and flips.
Expected: 74.8% top-1 validation accuracy (BN-x30, single crop, the paper's Figure 3:
eval_protocol "center").
"""
import ml_collections

from configs import googlenet_imagenet


def get_config():
  config = googlenet_imagenet.get_config()
  config.model = "inception_v2"
  config.model_options = ml_collections.ConfigDict()  # GoogLeNet's variant is not BN-Inception's
  config.learning_rate = 0.045
  config.lr_decay_every_epochs = 8 / 6
  config.weight_decay = 2e-4 / 5
  config.ema_decay = 0.0
  return config
