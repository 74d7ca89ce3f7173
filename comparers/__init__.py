"""The ktdiff engine: load -> summarize -> align -> explain -> report.

Each stage is one module: ``keras_loader`` / ``torch_loader`` (run in worker
processes by ``workers``), ``summary`` (the neutral data), ``align``,
``rules`` (the catalogue) and ``explain`` (runs it), ``report`` (renderers) and
``pipeline`` (the stages end to end). The numeric check: ``verify`` (plan, statistics,
attribution), ``porting`` (one function per weight layout), ``keras_verify`` and
``torch_verify`` (the workers' halves), ``plot``; ``files`` writes the user's output files.
"""
