"""VGG on ImageNet, the paper's recipe (Simonyan & Zisserman 2014, section 3.1).

SGD batch 256, momentum 0.9, L2 5e-4, dropout 0.5 in the first two dense layers, lr 1e-2
divided by 10 when validation accuracy stops improving (three times; training stopped after
74 epochs), single-scale S=256 or scale jittering S in [256, 512], random 224 crops, flips,
random RGB shift, mean-RGB subtraction. Configuration A starts from N(0, 0.01) weights; the
deeper ones take A's first four conv layers and three dense layers from a trained A
(config.init_from = the vgg11_imagenet workdir), the rest N(0, 0.01) — or Glorot
initialisation without pre-training, the paper's later note (init_from="" and
model_options.init="xavier").
Expected (the paper's Table 3: top-1 validation error, dense evaluation at one test
scale): A 29.6% and B 28.7% (S=256, Q=256); D 25.6% and E 25.5% (S in [256, 512],
Q=384). The recipe evaluates so: eval_protocol "dense" at TEST_SCALE (the dense layers as
convolutions over the central QxQ square of the image rescaled to shorter side Q, and its
flip; jaxcnn/data/views.py). The paper's multi-scale numbers (Table 4: D 24.8%, E 24.8%
over Q in {256, 384, 512}) are --config.eval_protocol=multi_scale
--config.eval_scales="(256, 384, 512)".
"""
from configs import imagenet
from jaxcnn.models import vgg

LETTERS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}
# A and B were trained at the fixed scale S=256 in Table 3, D and E with jittering.
SCALE_RANGE = {"vgg11": (256, 256), "vgg13": (256, 256), "vgg16": (256, 512),
               "vgg19": (256, 512)}
# Table 3's test scale: Q = S for a fixed S, the middle of the range for jittered training.
TEST_SCALE = {"vgg11": 256, "vgg13": 256, "vgg16": 384, "vgg19": 384}


def get_config(model: str = "vgg16", init_from: str = ""):
  config = imagenet.get_config()
  config.model = model
  config.model_options.init = "paper"
  config.train_preprocess = "vgg"
  config.vgg_scale_range = SCALE_RANGE[model]
  config.resize_size = 256
  config.batch_size = 256
  config.num_epochs = 74
  config.optimizer = "sgd"
  config.learning_rate = 1e-2
  config.momentum = 0.9
  config.weight_decay = 5e-4
  config.schedule = "constant"
  config.plateau_patience = 2
  config.plateau_factor = 0.1
  config.eval_protocol = "dense"
  config.eval_scales = (TEST_SCALE[model],)
  config.plateau_max_reductions = 3
  if model != "vgg11":
    config.init_from = init_from
    config.init_from_layers = vgg.paper_pre_init_layers(LETTERS[model])
  return config
