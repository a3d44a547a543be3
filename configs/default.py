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
  c.train_preprocess = "to_float"  # to_float | resize | cifar | alexnet | vgg | inception
  c.eval_preprocess = "to_float"  # to_float | resize | normalize (CIFAR) | center_crop
  # The papers' test protocols (jaxcnn/data/views.py): center | ten_crop | dense | multi_scale;
  # eval_scales: the shorter sides Q of dense (one) and multi_scale (several).
  c.eval_protocol = "center"
  c.eval_scales = ()
  c.image_size = 28  # the network's input side: the crop (or resize) size
  # Datasets (jaxcnn/data/sources.py). imagefolder reads class folders in data_dir: a
  # train/ and test/ pair, or one folder split per class with a fixed seed:
  c.holdout_fraction = 0.1  # imagefolder without train/test: share of each class held out
  c.holdout_seed = 0  # the seed of that split (fixed, independent of config.seed)
  c.cache_decoded_mb = 4096  # decode an image folder into memory once when it fits; 0: never
  c.synthetic_image_shape = (32, 32, 3)  # synthetic: random uint8 images of this shape,
  c.synthetic_train_examples = 10_000  # with random labels below num_classes
  c.synthetic_test_examples = 1_000
  # Preprocessing (jaxcnn/data/preprocess.py); each says which fields it reads.
  c.resize_size = 256  # alexnet: shorter side before cropping; center_crop: before the crop
  c.resize_antialias = False  # resize: average over the covered pixels when shrinking (PIL)
  c.crop_padding = 4  # cifar: zero padding on each side before the random crop
  c.random_flip = True  # cifar, alexnet, vgg, inception: random horizontal flips
  c.pca_lighting_std = 0.1  # alexnet: sigma of the PCA lighting noise (paper: 0.1); 0: off
  c.vgg_scale_range = (256, 512)  # vgg: smallest side S uniform in [lo, hi]; lo == hi: fixed S
  c.rgb_shift_std = 0.1  # vgg: random RGB colour shift (the AlexNet PCA shift); 0: off
  c.crop_area_range = (0.08, 1.0)  # inception: share of the image area a random crop covers
  c.crop_aspect_range = (0.75, 4.0 / 3.0)  # inception: the crop's aspect ratio range
  # Normalisation (x / 255 - mean_rgb) / std_rgb, on the [0, 1] scale; empty: the training
  # preprocessing's source (cifar: CIFAR-10 mean/std; alexnet, vgg: ImageNet mean RGB;
  # inception: [-1, 1]; to_float, resize: none). Evaluation uses the same.
  c.mean_rgb = ()
  c.std_rgb = ()
  # How long and how big (batch sizes are global, over all devices and hosts).
  c.batch_size = 256
  c.eval_batch_size = 256
  c.num_epochs = 5
  c.num_train_steps = -1  # -1: num_epochs * steps per epoch
  # True: an epoch is its whole batches (the papers' iteration counts). False: the last partial
  # batch is trained too, padded to the compiled shape and masked (PyTorch's DataLoader and
  # Keras' fit: 235 steps per Fashion-MNIST epoch at batch 256).
  c.drop_remainder = True
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
  c.warmup_kind = "linear"  # linear | constant (warmup_learning_rate held, then the schedule)
  c.lr_decay_steps = ()  # piecewise: also at these iterations
  c.lr_decay_every_epochs = 8.0  # exponential (staircase): GoogLeNet's x0.96 every 8 epochs
  c.grad_clip_norm = 0.0  # 0: no clipping
  c.label_smoothing = 0.0
  c.ema_decay = 0.0  # Polyak / EMA averaging of the parameters for evaluation; 0: off
  # What reduce-on-plateau, early stopping and the best checkpoint watch, with Keras's rules
  # (jaxcnn/train/monitor.py): val_accuracy | val_loss, of the split evaluated every epoch;
  # monitor_mode auto (a loss goes down, an accuracy up) | min | max.
  c.monitor = "val_accuracy"
  c.monitor_mode = "auto"
  # Reduce-on-plateau (divide the learning rate when the monitored metric stops improving) and
  # early stopping; 0 disables each. Their state is saved with every checkpoint. A run with
  # either calls its evaluated split "validation" (it chooses how training goes), else "test".
  c.plateau_patience = 0
  c.plateau_factor = 0.1
  c.plateau_max_reductions = 3
  c.early_stopping_patience = 0
  c.early_stopping_min_delta = 0.0
  # Start a fresh run with layers of another run's checkpoint, or fine-tune from torchvision's
  # weights (jaxcnn/train/pretrained.py):
  c.init_from = ""  # a workdir (its best checkpoint, else its latest), or
  #                   "torchvision:FILE" (.safetensors, or .pth with torch); empty: random init
  c.init_from_layers = ()  # "target=source" layer names; empty: every layer in both
  c.head_only_epochs = 0.0  # train only the classifier (jaxcnn.convert.HEADS) this long first
  c.aux_loss_weight = 0.3  # weight of each auxiliary classifier's loss (GoogLeNet)
  c.seed = 0
  # Devices.
  c.half_precision = False  # bfloat16 computation, float32 parameters and loss
  c.profile_steps = 0  # trace this many steps with jax.profiler (TensorBoard); 0: off
  c.profile_first_step = 10  # counted from the run's (or resume's) first step
  c.parallelism = "jit"  # jit (Mesh + NamedSharding) | pmap
  # JAX's persistent compilation cache (jaxcnn/compile_cache.py): a directory, "off", or
  # empty for $JAXCNN_COMPILATION_CACHE, else ~/.cache/jaxcnn/jax. A rerun loads its programs.
  c.compilation_cache = ""
  # Training steps per call of the compiled step (lax.scan over a group of batches), as
  # Keras' steps_per_execution: the host's per-call work is paid once per group. Worth it
  # where a step takes a few milliseconds (LeNet); 1: a call per step.
  c.steps_per_dispatch = 1
  c.sync_batch_norm = True  # False: per-replica batch statistics, as the papers
  # Checkpoints and logs.
  c.checkpoint_every_epochs = 1
  c.checkpoint_every_steps = 0  # 0: only at epoch ends (and on preemption)
  c.log_every_steps = 100  # host-device sync interval: non-finite check
  c.skip_nonfinite_steps = False  # False: stop at a non-finite loss; True: skip the step
  c.keep_checkpoints = 3  # the latest N; the best by config.monitor is kept as well
  c.progress_every_secs = 30.0
  return c
