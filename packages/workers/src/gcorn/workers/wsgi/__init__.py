"""The WSGI side of the workers: environ, input stream, response writer, file wrapper."""
