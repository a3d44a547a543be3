"""Weight import from other frameworks.

    variables = jaxcnn.convert.from_torchvision("resnet50", torch_model.state_dict())
    logits = jaxcnn.models.create("resnet50", num_classes=1000).apply(variables, images)

`CONVERTERS` maps a model name to its converter; each family's module adds its own entries.
"""
from jaxcnn.convert.torchvision import (CONVERTERS, HEADS, from_torchvision,  # noqa: F401
                                       head_labels, head_layer, in_head,
                                       read_state_dict)
