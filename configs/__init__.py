"""ml_collections configs: one file per recipe (`--config=configs/NAME.py`).

`RECIPES` lists them, each naming its source and the result it should reach; the other
files hold what several recipes share (default.py: every field, with its meaning).
"""
RECIPES = (
    # seed documents (../shared/seeds)
    "lenet_fashion_mnist", "alexnet_fashion_mnist", "resnet18_cifar", "resnet18_cifar_adam",
    "alexnet_flowers17", "vgg16_flowers17", "inception_v2_flowers17", "resnet50_signs",
    "resnet18_blog_cifar", "resnet_blog_small_cifar",
    # papers
    "alexnet_imagenet", "vgg11_imagenet", "vgg13_imagenet", "vgg16_imagenet", "vgg19_imagenet",
    "googlenet_imagenet", "inception_v2_imagenet",
    "resnet18_imagenet", "resnet34_imagenet", "resnet50_imagenet", "resnet101_imagenet",
    "resnet152_imagenet",
    "resnet20_cifar", "resnet32_cifar", "resnet44_cifar", "resnet56_cifar", "resnet110_cifar",
    "plain20_cifar", "plain56_cifar",
    # fine-tuning torchvision's weights
    "resnet50_finetune",
)
SHARED = ("default", "cifar10", "flowers17", "imagenet", "vgg_imagenet", "resnet_imagenet", "resnet_cifar")
