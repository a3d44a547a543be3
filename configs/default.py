"""Defaults shared by every recipe; each config file overrides what its source specifies."""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # What to train.
  c.model = "lenet5"
  c.model_options = ml_collections.ConfigDict()  # keyword options for models.create
  c.dataset = "fashion_mnist"
  c.num_classes = 10
  c.data_dir = ""  # empty: tfds's default directory, then the offline sources
  c.download = True  # let tfds download when no local copy exists
  c.train_preprocess = "to_float"
  c.eval_preprocess = "to_float"
  c.image_size = 28
  # How long and how big (batch sizes are global, over all devices and hosts).
  c.batch_size = 256
  c.eval_batch_size = 256
  c.num_epochs = 5
  c.num_train_steps = -1  # -1: num_epochs * steps per epoch
  # Optimisation.
  c.optimizer = "adam"  # adam | adamw | sgd
  c.learning_rate = 1e-3
  c.momentum = 0.9  # sgd only
  c.nesterov = False
  c.weight_decay = 0.0
  c.schedule = "constant"  # constant | cosine | piecewise | exponential
  c.warmup_epochs = 0.0
  c.lr_decay_epochs = ()
  c.lr_decay_factor = 0.1
  c.warmup_steps = 0  # added to warmup_epochs (ResNet-110: 400 iterations)
  c.warmup_learning_rate = 0.0  # where the linear warmup starts
  c.lr_decay_steps = ()  # piecewise: also at these iterations
  c.lr_decay_every_epochs = 8.0  # exponential (staircase): GoogLeNet's x0.96 every 8 epochs
  c.grad_clip_norm = 0.0  # 0: no clipping
  c.label_smoothing = 0.0
  c.ema_decay = 0.0  # Polyak / EMA averaging of the parameters for evaluation; 0: off
  # Reduce-on-plateau (divide the learning rate when test accuracy stops improving) and
  # early stopping; 0 disables each. Their state is saved with every checkpoint.
  c.plateau_patience = 0
  c.plateau_factor = 0.1
  c.plateau_max_reductions = 3
  c.early_stopping_patience = 0
  c.early_stopping_min_delta = 0.0
  c.aux_loss_weight = 0.3  # weight of each auxiliary classifier's loss (GoogLeNet)
  c.seed = 0
  # Devices.
  c.parallelism = "jit"  # jit (Mesh + NamedSharding) | pmap
  c.sync_batch_norm = True  # False: per-replica batch statistics, as the papers
  # Checkpoints and logs.
  c.checkpoint_every_epochs = 1
  c.checkpoint_every_steps = 0  # 0: only at epoch ends (and on preemption)
  c.log_every_steps = 100  # host-device sync interval: non-finite check
  c.skip_nonfinite_steps = False  # False: stop at a non-finite loss; True: skip the step
  c.keep_checkpoints = 3  # the latest N; the best by test accuracy is kept as well
  c.progress_every_secs = 30.0
  return c
