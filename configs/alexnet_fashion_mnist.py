"""d2l's AlexNet on Fashion-MNIST resized to 224x224, the first seed document's recipe.

Source: seed 000 (d2l, ch. 5.6): the simplified single-channel AlexNet (96-256-384-384-256
convolutions, 4096-4096 dense with dropout 0.5), images resized to 224, Adam lr 1e-3,
batch 128, 5 epochs.
Expected: the seed prints no result for this network; d2l's book, which the seed follows,
shows test accuracy in the high 0.8s over these 5 epochs. Measured here: 0.849 after the
first epoch (README, "Recipes").
"""
from configs import default


def get_config():
  config = default.get_config()
  config.model = "alexnet_d2l"
  config.dataset = "fashion_mnist"
  config.num_classes = 10
  config.train_preprocess = "resize"
  config.eval_preprocess = "resize"
  config.image_size = 224
  config.batch_size = 128
  config.drop_remainder = False  # seed 000's DataLoader keeps the last partial batch: 469 steps an epoch
  config.eval_batch_size = 500
  config.num_epochs = 5
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  return config
