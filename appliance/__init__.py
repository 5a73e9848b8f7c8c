"""On-prem RAG appliance: documents in, cited answers streamed out."""

__version__ = "0.1.0"
