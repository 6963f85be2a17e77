"""Model architectures the task runners pretrain when no pretrained weights are given."""
