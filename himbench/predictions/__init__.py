"""Prediction folders (SPEC s.4): the one home of their format, written by ``himbench predict`` and read by
``himbench evaluate``, ``bench`` and the plots.

- :mod:`~himbench.predictions.writer`: :func:`write_prediction` writes one image's ``<split>/<stem>/<k>.png`` mattes
  and ``scores.json`` (and the merged ``<stem>.png`` of a single-matte benchmark).
- :mod:`~himbench.predictions.reader`: :func:`read_prediction_folder` and :func:`read_single_prediction` read them
  back, reporting each bad file as a :class:`~himbench.io.Problem`; :func:`merge_instances` makes one matte of many.
- :mod:`~himbench.predictions.manifest`: ``predictions.json``, what made the folder and which ground truth it
  belongs to.

The modules are imported on use: the manifest needs no image library, and the reader and writer need no torch.
"""

__all__ = ["manifest", "reader", "writer"]
