#!/bin/sh
# Builds wordcount.jar (class com.example.WordCount) next to this script.
set -eu
cd "$(dirname "$0")"
rm -rf classes && mkdir classes
javac --release 11 -d classes $(find src -name '*.java')
jar cf wordcount.jar -C classes .
rm -rf classes
