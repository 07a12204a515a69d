"""ONNX export of seqrec models and an onnxruntime recogniser.

``seqrec.export.onnx.export_onnx`` writes one verified, self-contained ``.onnx``
file (graph + metadata); ``seqrec.export.runtime.OnnxRecognizer`` runs such a
file with onnxruntime behind the same interface as
:class:`seqrec.recognizer.Recognizer`. Import the submodules directly; this
package imports nothing heavy by itself.
"""

FORMAT = "seqrec-onnx"  # metadata "format" of every export
FORMAT_VERSION = 1  # metadata layout version; readers refuse newer ones
