"""Fine-tuning torchvision's ImageNet ResNet-50 on one's own images (a class-per-folder set).

Source: torchvision's transfer-learning tutorial ("Finetuning the ConvNet": the pretrained
network, a new classifier for the folder's classes, SGD with momentum 0.9 at lr 0.001
divided by 10 every 7 epochs, 25 epochs, RandomResizedCrop(224) and flips for training,
Resize(256) + CenterCrop(224) for evaluation, ImageNet's mean and std). Here at batch 32
(the tutorial's 4), with lr 0.008 by the linear scaling rule, and the new classifier
trained alone for the first epoch (head_only_epochs) so that its random start does not
disturb the pretrained features.
Expected: the tutorial fine-tunes ResNet-18 on its ants-and-bees folder (hymenoptera, 244
training images) to about 0.94 validation accuracy in 25 epochs; ResNet-50 should do at least
as well. Not measured here: these machines have neither torchvision's pretrained weights nor
that folder (tests/test_finetune.py trains from a converted random ResNet-18 instead).

Weights: torchvision's state_dict saved where torch is installed (reading it needs neither
torch nor pickle):
    import torchvision, safetensors.torch
    model = torchvision.models.resnet50(weights="IMAGENET1K_V1")
    safetensors.torch.save_file(model.state_dict(), "resnet50.safetensors")
(a .pth state_dict also reads, with torch installed: --config.init_from=torchvision:FILE.pth).
Data: --config.data_dir=DIR with train/ and test/ class folders (or one folder, 10% of each
class held out), --config.num_classes=<the number of class folders>.
"""
from configs import default


def get_config():
  config = default.get_config()
  config.model = "resnet50"
  config.init_from = "torchvision:resnet50.safetensors"
  config.head_only_epochs = 1.0
  config.dataset = "imagefolder"
  config.num_classes = 2  # the tutorial's ants and bees
  config.image_size = 224
  config.train_preprocess = "inception"  # RandomResizedCrop: 8-100% of the area, 3/4-4/3
  config.crop_area_range = (0.08, 1.0)
  config.crop_aspect_range = (3 / 4, 4 / 3)
  config.eval_preprocess = "center_crop"
  config.resize_size = 256
  config.mean_rgb = (0.485, 0.456, 0.406)  # torchvision's normalisation, which its weights expect
  config.std_rgb = (0.229, 0.224, 0.225)
  config.batch_size = 32
  config.eval_batch_size = 32
  config.drop_remainder = False  # PyTorch's DataLoader trains the last partial batch
  config.num_epochs = 25
  config.optimizer = "sgd"
  config.learning_rate = 0.008
  config.momentum = 0.9
  config.schedule = "piecewise"
  config.lr_decay_epochs = (7, 14, 21)
  config.lr_decay_factor = 0.1
  return config
