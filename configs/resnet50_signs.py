"""Keras's ResNet-50 on the SIGNS hand-gesture set, seed 004's experiment.

Source: seed 004 (the Coursera Keras ResNet-50: stride in the first 1x1 conv of each
convolutional block, conv biases, zero-padded 7x7 stem and 3x3 max-pool, 2x2 average pool
before the dense layer; 23,546,886 trainable and 53,120 non-trainable parameters for 64x64x3
and 6 classes), Adam (Keras's default lr 1e-3), batch 32, 10 epochs, images scaled to [0, 1].
Expected: about 0.89 test accuracy (the document's evaluation after 10 epochs).
Data: SIGNS (1,080 training and 120 test images, 64x64, digits 0-5 in sign language) as an
image folder with train/ and test/ class folders:  --config.data_dir=PATH/TO/signs
"""
from configs import default


def get_config():
  config = default.get_config()
  config.model = "resnet50_keras"
  config.dataset = "imagefolder"
  config.num_classes = 6
  config.image_size = 64
  config.train_preprocess = "to_float"
  config.eval_preprocess = "to_float"
  config.batch_size = 32
  config.drop_remainder = False  # Keras' fit trains the last partial batch too: 34 steps an epoch
  config.eval_batch_size = 120
  config.num_epochs = 10
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  return config
