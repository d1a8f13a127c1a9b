/* A C processor for the tests: shows what initialize() received and misbehaves on request.
 * model_config containing "refuse" sets *state to 7; a body "segv" crashes the instance;
 * "code:N" returns N; anything else answers "pid=<pid> entry=<model_entry> config=<model_config>".
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *initialize(const char *model_entry, const char *model_config, int *state) {
  if (strstr(model_config, "refuse") != NULL) {
    *state = 7;
    return NULL;
  }
  char *seen = NULL;
  if (asprintf(&seen, "entry=%s config=%s", model_entry, model_config) < 0) {
    *state = 1;
    return NULL;
  }
  *state = 0;
  return seen;
}

int process(void *model_buf, const void *input_data, int input_size, void **output_data,
            int *output_size) {
  char body[64] = {0};
  memcpy(body, input_data, input_size < 63 ? input_size : 63);
  if (strcmp(body, "segv") == 0) {
    raise(SIGSEGV);
  }
  if (strncmp(body, "code:", 5) == 0) {
    char *out = strdup("custom answer");
    *output_data = out;
    *output_size = strlen(out);
    return atoi(body + 5);
  }
  char *out = NULL;
  *output_size = asprintf(&out, "pid=%d %s", (int)getpid(), (const char *)model_buf);
  *output_data = out;
  return 0;
}
