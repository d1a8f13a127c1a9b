package com.example;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Counts the words of a text, leaving out the stop words listed one a line in the model
 * file (model_entry), and answers them as JSON, most-used order not implied: keys sorted.
 */
public class WordCount {
  private final String modelEntry;
  private final Set<String> stopWords = new HashSet<>();

  public WordCount(String modelEntry, String modelConfig) {
    this.modelEntry = modelEntry;
  }

  public void Load() throws IOException {
    for (String line : Files.readAllLines(Path.of(modelEntry))) {
      String word = line.trim().toLowerCase(Locale.ROOT);
      if (!word.isEmpty()) stopWords.add(word);
    }
  }

  public String Process(String text) {
    if (text.isBlank()) {
      throw new IllegalArgumentException("the text to count is empty");
    }
    Map<String, Integer> counts = new TreeMap<>();
    for (String word : text.toLowerCase(Locale.ROOT).split("[^\\p{L}\\p{N}']+")) {
      if (!word.isEmpty() && !stopWords.contains(word)) counts.merge(word, 1, Integer::sum);
    }
    StringBuilder json = new StringBuilder("{");
    for (Map.Entry<String, Integer> entry : counts.entrySet()) {
      if (json.length() > 1) json.append(", ");
      json.append('"').append(entry.getKey().replace("\"", "\\\"")).append("\": ");
      json.append(entry.getValue());
    }
    return json.append('}').toString();
  }
}
