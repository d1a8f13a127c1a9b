package com.alibaba.eas;

import java.nio.charset.StandardCharsets;

/** PAI-EAS's Java echo processor: answers the request body, prefixed by the model it got. */
public class TestProcessor {
  private final String modelEntry;
  private final String modelConfig;

  public TestProcessor(String modelEntry, String modelConfig) {
    this.modelEntry = modelEntry;
    this.modelConfig = modelConfig;
  }

  public void Load() {}

  public byte[] Process(byte[] input) {
    if (input.length == 0) {
      throw new RuntimeException("input data should not be empty");
    }
    String head = "model_entry=" + modelEntry + " model_config=" + modelConfig + "\n";
    byte[] prefix = head.getBytes(StandardCharsets.UTF_8);
    byte[] out = new byte[prefix.length + input.length];
    System.arraycopy(prefix, 0, out, 0, prefix.length);
    System.arraycopy(input, 0, out, prefix.length, input.length);
    return out;
  }

  public static void main(String[] args) {
    TestProcessor processor = new TestProcessor("", "");
    processor.Load();
    System.out.println(new String(processor.Process("hello".getBytes()), StandardCharsets.UTF_8));
  }
}
