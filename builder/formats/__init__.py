"""Reading package formats as data: what a .deb, an .rpm or a FreeBSD .pkg
says about itself, read from its bytes, bounded, without extracting or
installing anything. Packagers (builder/package/) record these facts at
build time; repository writers (builder/repo/) read the same files again.
This package imports neither, so both can use it."""
