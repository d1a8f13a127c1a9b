// Classifies 28x28 grey images (784 bytes, one per pixel, row by row) with a linear model:
// scores = W x + b, softmax, answered as JSON {"label": k, "probabilities": [...]}.
// model_entry is a file of 7850 little-endian float32: W (10 rows of 784), then b (10).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

namespace {
const int kPixels = 28 * 28;
const int kClasses = 10;

struct Model {
  std::vector<float> weights;  // kClasses x kPixels
  std::vector<float> bias;     // kClasses
};

int answer(const std::string &text, void **output_data, int *output_size, int code) {
  char *out = static_cast<char *>(malloc(text.size()));
  memcpy(out, text.data(), text.size());
  *output_data = out;
  *output_size = text.size();
  return code;
}
}  // namespace

extern "C" {

void *initialize(const char *model_entry, const char *model_config, int *state) {
  FILE *file = fopen(model_entry, "rb");
  if (file == NULL) {
    *state = 2;  // no model file
    return NULL;
  }
  Model *model = new Model();
  model->weights.resize(kClasses * kPixels);
  model->bias.resize(kClasses);
  size_t read = fread(model->weights.data(), sizeof(float), model->weights.size(), file);
  read += fread(model->bias.data(), sizeof(float), model->bias.size(), file);
  bool longer = fgetc(file) != EOF;
  fclose(file);
  if (read != static_cast<size_t>(kClasses * kPixels + kClasses) || longer) {
    delete model;
    *state = 3;  // not 7850 float32
    return NULL;
  }
  *state = 0;
  return model;
}

int process(void *model_buf, const void *input_data, int input_size, void **output_data,
            int *output_size) {
  const Model *model = static_cast<Model *>(model_buf);
  if (input_size != kPixels) {
    char message[128];
    snprintf(message, sizeof message, "expected %d bytes (28x28 pixels), got %d", kPixels,
             input_size);
    return answer(message, output_data, output_size, 400);
  }
  const unsigned char *pixels = static_cast<const unsigned char *>(input_data);
  double scores[kClasses];
  double top = -INFINITY;
  int label = 0;
  for (int k = 0; k < kClasses; ++k) {
    double sum = model->bias[k];
    for (int i = 0; i < kPixels; ++i) sum += model->weights[k * kPixels + i] * (pixels[i] / 255.0);
    scores[k] = sum;
    if (sum > top) {
      top = sum;
      label = k;
    }
  }
  double total = 0;
  for (int k = 0; k < kClasses; ++k) total += exp(scores[k] - top);
  std::string json = "{\"label\": " + std::to_string(label) + ", \"probabilities\": [";
  for (int k = 0; k < kClasses; ++k) {
    char number[32];
    snprintf(number, sizeof number, "%s%.6f", k ? ", " : "", exp(scores[k] - top) / total);
    json += number;
  }
  json += "]}";
  return answer(json, output_data, output_size, 200);
}
}
