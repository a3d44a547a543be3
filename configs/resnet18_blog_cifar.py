"""Seed 001's "ResNet18" on CIFAR-10, with the seed's own data handling and optimiser.

Source: seed 001 (PyTorch): its network (`resnet18_blog`: a 3x3 stride-3 stem, four
single-block stages of stride 2, 4,910,410 parameters); its data: Resize(32) (the identity on
32x32 CIFAR images), ToTensor, Normalize with ImageNet's mean (0.485, 0.456, 0.406) and std
(0.229, 0.224, 0.225), no augmentation, shuffled; Adam; one pass over the data
(`for epoch in range(1)`). The seed leaves its batch size and learning rate undefined
(`batch_sz`, `learn_rate`): this config takes batch 128 (the CIFAR recipes' batch) and
Adam's usual 1e-3.
Expected: the seed says "about 90%" test accuracy, a number its single epoch cannot have
produced; train longer with --config.num_epochs=N.
Data: see configs/cifar10.py (offline: --config.dataset=imagefolder --config.data_dir=DIR).
"""
from configs import cifar10


def get_config():
  config = cifar10.get_config()
  config.model = "resnet18_blog"
  config.train_preprocess = "to_float"  # no augmentation
  config.eval_preprocess = "to_float"
  config.mean_rgb = (0.485, 0.456, 0.406)
  config.std_rgb = (0.229, 0.224, 0.225)
  config.batch_size = 128
  config.drop_remainder = False  # seed 001's DataLoader keeps the last partial batch: 391 steps an epoch
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  config.num_epochs = 1
  return config
