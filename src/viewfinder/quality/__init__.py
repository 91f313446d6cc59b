"""Data quality: checks (declarative data tests), detectors (findings), embeddings.

Layering: ``quality`` sits above ``storage`` and ``formats`` and below ``services``. Checks
and detectors read one dataset version through a :class:`~viewfinder.quality.context.QualityContext`
that computes shared expensive inputs (image statistics, embeddings, findings) once.
"""
