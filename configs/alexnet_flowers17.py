"""AlexNet on the 17-category flowers, seed 003's first Keras experiment.

Source: seed 003: its Keras AlexNet (`alexnet_keras`: every conv "same", 2x2 max-pools,
71,982,481 parameters for 17 classes; not torchvision's), optimizer='adam' (Keras's
default lr 1e-3).
Expected: validation accuracy near 0.50, as the document reports (training accuracy near
0.99: heavy overfitting).
See configs/flowers17.py for the data and the shared recipe.
"""
from configs import flowers17


def get_config():
  config = flowers17.get_config()
  config.model = "alexnet_keras"
  config.learning_rate = 1e-3
  return config
