"""The paper's timm architectures, with random weights and one input channel, and their Table I counts.

Any other timm model needs no line here: models.registry builds a name timm knows with the defaults.
A line here gives it a table label, a smallest input or a paper count.
"""

from .registry import register_timm

register_timm("resnet18", label="RN-18", paper_params=11_185_218)
register_timm("resnet50", label="RN-50", paper_params=23_558_978)
register_timm("vgg19", label="VGG-19", paper_params=139_577_282)
register_timm("inception_v3", label="Inc-v3", min_size=75, paper_params=21_806_306)
