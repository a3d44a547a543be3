"""BN-Inception (Inception-v2) on the 17-category flowers, seed 003's third Keras experiment.

Source: seed 003 (the Keras Inception-v2 it builds, Adam lr 1e-5).
Expected: validation accuracy near 0.70, as the document reports.
See configs/flowers17.py for the data and the shared recipe.
"""
from configs import flowers17


def get_config():
  config = flowers17.get_config()
  config.model = "inception_v2"
  config.learning_rate = 1e-5
  return config
