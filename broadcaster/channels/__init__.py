"""Channel kinds. Built from config through the plain mapping in ``registry``."""
