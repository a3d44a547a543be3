"""What the three Keras experiments of seed 003 share: the 17-category flower set.

Source: seed 003 trains AlexNet, VGG-16 and Inception-v2 in Keras on tflearn's oxflower17
(1,360 images, 80 per class, resized to 224x224), an 80/20 train_test_split, batch 64,
up to 100 epochs, EarlyStopping(patience=30, min_delta=1e-4) and
ModelCheckpoint(save_best_only=True), both watching Keras's default, val_loss (the held-out
20%, which the seed passes as validation_data).
Data: the images as a class-per-folder directory (17 folders):
  --config.data_dir=PATH/TO/flowers17
"""
from configs import default


def get_config():
  config = default.get_config()
  config.dataset = "imagefolder"
  config.num_classes = 17
  config.holdout_fraction = 0.2
  config.image_size = 224
  config.train_preprocess = "resize"
  config.eval_preprocess = "resize"
  config.resize_antialias = True  # the seed's images come resized by PIL, antialiased
  config.batch_size = 64
  config.drop_remainder = False  # Keras' fit trains the last partial batch too
  config.eval_batch_size = 64
  config.num_epochs = 100
  config.optimizer = "adam"
  config.monitor = "val_loss"  # Keras's callbacks' default
  config.early_stopping_patience = 30
  config.early_stopping_min_delta = 1e-4
  return config
