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
  c.schedule = "constant"  # constant | cosine | piecewise
  c.warmup_epochs = 0.0
  c.lr_decay_epochs = ()
  c.lr_decay_factor = 0.1
  c.label_smoothing = 0.0
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
