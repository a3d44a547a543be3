"""Seed 000's two-block residual network on CIFAR-10, with the seed's own recipe.

Source: seed 000 (its PyTorch ResNet section): the network (`resnet_blog_small`: conv 16,
a 16->16 and a 16->32 block, no stride, a dense layer on the flattened 32x32x32 map,
347,498 parameters); Resize((32, 32)) and ToTensor only (no normalisation, no
augmentation); batch 32, shuffled; Adam lr 1e-3; `for epoch in range(1000)`.
Expected: the seed prints each epoch's test accuracy but reports no number.
Data: see configs/cifar10.py (offline: --config.dataset=imagefolder --config.data_dir=DIR).
"""
from configs import cifar10


def get_config():
  config = cifar10.get_config()
  config.model = "resnet_blog_small"
  config.train_preprocess = "to_float"
  config.eval_preprocess = "to_float"
  config.batch_size = 32
  config.drop_remainder = False  # seed 000's DataLoader keeps the last partial batch
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  config.num_epochs = 1000
  return config
