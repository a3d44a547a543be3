"""What the CIFAR-10 recipes share: the data, its augmentation and the batch sizes.

4-pixel padding, random 32x32 crops and horizontal flips for training; per-channel mean/std
normalisation for both splits; batch 128 (He et al. 2016 and the seeds alike).
Data: tfds `cifar10`, or offline the CIFAR-10 JPEG copy as an image folder:
  --config.dataset=imagefolder --config.data_dir=DIR  (DIR holding train/ and test/)
"""
from configs import default


def get_config():
  config = default.get_config()
  config.dataset = "cifar10"
  config.num_classes = 10
  config.image_size = 32
  config.train_preprocess = "cifar"
  config.eval_preprocess = "normalize"
  config.batch_size = 128
  config.eval_batch_size = 1000
  return config
