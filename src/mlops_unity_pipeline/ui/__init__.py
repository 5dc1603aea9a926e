"""The web dashboard (`unity-mlops ui`): server-rendered pages over the stores the pipeline writes."""
