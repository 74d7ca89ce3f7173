"""The ktdiff engine: load -> summarize -> align -> explain -> report.

Each stage is one module: ``keras_loader`` / ``torch_loader`` (run in worker
processes by ``workers``), ``summary`` (the neutral data), ``align``,
``rules`` (the catalogue) and ``explain`` (runs it), ``report`` (renderers) and
``pipeline`` (the stages end to end).
"""
