#!/bin/sh
# Builds processor.jar (class com.alibaba.eas.TestProcessor) next to this script.
set -eu
cd "$(dirname "$0")"
rm -rf classes && mkdir classes
javac --release 11 -d classes $(find src -name '*.java')
jar cf processor.jar -C classes .
rm -rf classes
