#!/bin/sh
# envtrainer.sh is an external trainer for TestExternalTrainerGetsNoSecrets:
# it writes its whole environment to the file $ENV_DUMP names (a variable
# the model's env: sets), prints that environment and its command line to
# its log (a trainer that echoes its settings, secrets included, as real
# ones do), and fails, so that the log's tail is stored in training_runs.
#
#   sh envtrainer.sh --echo VALUE --dataset DIR --metadata FILE --output DIR
env | sort >"${ENV_DUMP:?ENV_DUMP is not set}"
echo "envtrainer: environment:"
env | sort
echo "envtrainer: arguments: $*"
if [ "$1" = "--echo" ]; then
	echo "envtrainer: connecting with password=$2"
fi
echo "envtrainer: refusing to train" >&2
exit 3
