"""liam-core's Hydra configs, shipped in the wheel as ``liam_core.conf``.

Entry points compose them with ``config_path="pkg://liam_core.conf"``; notebooks with
``hydra.initialize_config_module("liam_core.conf")``; other projects reuse the groups with
``hydra: {searchpath: [pkg://liam_core.conf]}`` in their primary config.
"""
