"""The CIFAR-10 ResNets of He et al. (2016), section 4.2.

SGD batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, stopped at 64k, momentum
0.9, weight decay 1e-4, He initialisation, BN, no dropout, option A shortcuts (identity with
zero padding); 4-pixel padding, random 32x32 crops, horizontal flips, per-pixel mean
subtraction (here per-channel mean/std). ResNet-110 warms up at lr 0.01 for about 400
iterations, then goes back to 0.1. (The paper trains on 45k images and validates on 5k;
these configs train on all 50k.)
Expected, test error (the paper's Table 6): ResNet-20 8.75%, ResNet-32 7.51%, ResNet-44
7.17%, ResNet-56 6.97%, ResNet-110 6.43% (best of 5 runs; mean 6.61%), each "evaluating
the single view of the original 32x32 image" (eval_protocol "center").
See configs/cifar10.py for the data.
"""
from configs import cifar10

PAPER_TEST_ERROR = {"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97,
                    "resnet110": 6.43}


def get_config(model: str = "resnet20"):
  config = cifar10.get_config()
  config.model = model
  config.num_train_steps = 64_000
  config.optimizer = "sgd"
  config.learning_rate = 0.1
  config.momentum = 0.9
  config.weight_decay = 1e-4
  config.schedule = "piecewise"
  config.lr_decay_steps = (32_000, 48_000)
  config.lr_decay_factor = 0.1
  if model == "resnet110":
    config.warmup_steps = 400
    config.warmup_learning_rate = 0.01
    config.warmup_kind = "constant"
  return config
