// PAI-EAS's C/C++ echo processor: answers the request body, followed by the files of the
// service's model (model_entry) so a deployment shows which model reached the instance.
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include <string>

extern "C" {

void *initialize(const char *model_entry, const char *model_config, int *state) {
  std::string *listing = new std::string();
  DIR *dir = opendir(model_entry);
  if (dir != NULL) {
    struct dirent *item;
    while ((item = readdir(dir)) != NULL) {
      if (item->d_name[0] == '.') continue;
      *listing += "\nmodel file: ";
      *listing += item->d_name;
    }
    closedir(dir);
  } else if (model_entry[0] != '\0') {
    *listing += "\nmodel file: ";
    *listing += model_entry;
  }
  *state = 0;
  return listing;
}

int process(void *model_buf, const void *input_data, int input_size, void **output_data,
            int *output_size) {
  if (input_size == 0) {
    const char *errmsg = "input data should not be empty";
    *output_data = strndup(errmsg, strlen(errmsg));
    *output_size = strlen(errmsg);
    return 400;
  }
  const std::string *listing = static_cast<std::string *>(model_buf);
  std::string answer(static_cast<const char *>(input_data), input_size);
  answer += *listing;
  // The runtime frees the answer with free(): allocate it with malloc.
  char *out = static_cast<char *>(malloc(answer.size()));
  memcpy(out, answer.data(), answer.size());
  *output_data = out;
  *output_size = answer.size();
  return 200;
}
}
