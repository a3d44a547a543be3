"""LeNet-5 (d2l's sigmoid version) on Fashion-MNIST, the first seed document's recipe.

Source: seed 000 (d2l, "Dive into Deep Learning", ch. 5.5): Adam, lr 1e-3, batch 256,
5 epochs, PyTorch default initialisation, inputs scaled to [0, 1].
Expected: test accuracy about 0.75-0.77 after 5 epochs (the seed's own script on this data
gives 0.586 / 0.593 after epoch 1 and 0.765 / 0.75 after epoch 5 for two seeds).
"""
from configs import default


def get_config():
  config = default.get_config()
  config.model = "lenet5"
  config.dataset = "fashion_mnist"
  config.num_classes = 10
  config.batch_size = 256
  config.drop_remainder = False  # seed 000's DataLoader keeps the last partial batch: 235 steps an epoch
  config.eval_batch_size = 1000
  config.num_epochs = 5
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  # LeNet's step takes about 12 ms on a 2-core CPU, of which the host's work per call would
  # take a tenth: 8 steps per call (identical results; docs/speed.md has the figures).
  config.steps_per_dispatch = 8
  return config
