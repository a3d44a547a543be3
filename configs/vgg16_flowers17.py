"""VGG-16 on the 17-category flowers, seed 003's second Keras experiment.

Source: seed 003 (Keras VGG-16, Glorot-uniform initialisation as Keras's default,
Adam lr 1e-5).
Expected: validation accuracy near 0.60, as the document reports.
See configs/flowers17.py for the data and the shared recipe.
"""
from configs import flowers17


def get_config():
  config = flowers17.get_config()
  config.model = "vgg16"
  config.model_options.init = "xavier"
  config.learning_rate = 1e-5
  return config
