# HRNetV2 + FCN head: mmseg_hrplus.HRNet (official fusion) with mmseg's FCNHead reading all four
# streams resized to 1/4 and concatenated (HRNetV2 representation). Widths here are W18's;
# configs for other widths override backbone.arch and decode_head.in_channels/channels.
# For HRNetV1 (highest-resolution stream only) use in_index=0, in_channels=channels=18 and drop
# input_transform.
custom_imports = dict(imports=['mmseg_hrplus'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmseg_hrplus.HRNet',
        arch='w18',
        fusion_mode='official',
        upsample_mode='bilinear',
        align_corners=False,
        norm_cfg=norm_cfg,
        norm_eval=False),
    decode_head=dict(
        type='FCNHead',
        in_channels=[18, 36, 72, 144],
        in_index=(0, 1, 2, 3),
        channels=sum([18, 36, 72, 144]),
        input_transform='resize_concat',
        kernel_size=1,
        num_convs=1,
        concat_input=False,
        dropout_ratio=-1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
