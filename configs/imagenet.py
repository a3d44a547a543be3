"""What the ImageNet recipes share: ILSVRC-2012 through tfds's manual-download path.

Data: download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from image-net.org into
DATA_DIR/downloads/manual/ and pass --config.data_dir=DATA_DIR; tfds prepares
`imagenet2012` from them once (the test split here is the 50,000-image validation set,
which the papers report their top-1/top-5 on).
"""
from configs import default


def get_config():
  config = default.get_config()
  config.dataset = "imagenet2012"
  config.num_classes = 1000
  config.image_size = 224
  config.resize_size = 256
  config.eval_preprocess = "center_crop"
  config.eval_batch_size = 250
  config.download = False
  return config
