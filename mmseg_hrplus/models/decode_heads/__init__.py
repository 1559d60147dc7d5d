"""Registered decode_heads."""
from .aspp_head import ASPPHead, DeepLabV2ASPPHead  # noqa: F401  (ASPPHead: the old name)
from .bga_head import BGAHead  # noqa: F401
from .booster_head import BoosterHead  # noqa: F401
from .resize_sum_fcn_head import ResizeSumFCNHead  # noqa: F401
