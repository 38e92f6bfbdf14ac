/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The dictionaries a D-Bus caller sends: the input is a serialized a{sv}
 * (GVariant wire format, as GDBus hands it over, in normal form), read as
 * the CreateVM config (smolvm_vm_config_new_from_variant()) and as the
 * options of each method (smolvm_call_check_options() with the lists the
 * operations use). A config that parses must round-trip through its
 * variant and through its JSON record. */
#include "config.h"

#include "fuzz-common.h"
#include "smolvm-call.h"
#include "smolvm-vm-config.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* as in smolvm-op-*.c */
static const gchar *const known_options[][3] = {
  { "resume-source", NULL },  /* CreateSnapshot */
  { "resume", "force", NULL }, /* RestoreSnapshot */
  { "force", NULL },           /* Delete */
  { NULL },                    /* DeleteSnapshot, Start, Pause, Resume, Stop */
};

static void
check_round_trip (const SmolvmVmConfig *config)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) variant = g_variant_ref_sink (smolvm_vm_config_to_variant (config));
  g_autoptr(SmolvmVmConfig) from_variant = NULL;
  g_autoptr(SmolvmVmConfig) from_json = NULL;
  g_autoptr(JsonNode) json = smolvm_vm_config_to_json (config);
  g_autoptr(GVariant) again = NULL;
  g_autoptr(GVariant) again_json = NULL;

  /* vm_id "" (an id to be generated) is sent as "", which parses back */
  from_variant = smolvm_vm_config_new_from_variant (variant, !config->network, &error);
  if (from_variant == NULL) {
    fuzz_finding ("a valid config does not parse back from its variant", "%s", error->message);
    return;
  }
  again = g_variant_ref_sink (smolvm_vm_config_to_variant (from_variant));
  if (!g_variant_equal (variant, again))
    fuzz_finding ("the config changes through its variant", "%s", "");

  from_json = smolvm_vm_config_new_from_json (json_node_get_object (json), &error);
  if (from_json == NULL) {
    fuzz_finding ("a valid config does not parse back from its JSON", "%s", error->message);
    return;
  }
  again_json = g_variant_ref_sink (smolvm_vm_config_to_variant (from_json));
  if (!g_variant_equal (variant, again_json)) {
    g_autofree gchar *a = g_variant_print (variant, TRUE);
    g_autofree gchar *b = g_variant_print (again_json, TRUE);
    fuzz_finding ("the config changes through its JSON record", "%s\n%s", a, b);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static gboolean initialized;
  g_autoptr(GBytes) bytes = g_bytes_new (data, size);
  g_autoptr(GVariant) wire = NULL;
  g_autoptr(GVariant) dict = NULL;

  if (!initialized) {
    fuzz_init_logging ();
    initialized = TRUE;
  }
  wire = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE_VARDICT, bytes, FALSE));
  /* transfer full, not floating */
  dict = g_variant_get_normal_form (wire);

  for (int network_default = 0; network_default <= 1; network_default++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(SmolvmVmConfig) config =
      smolvm_vm_config_new_from_variant (dict, network_default, &error);
    if (config == NULL) {
      g_assert_nonnull (error);
      continue;
    }
    check_round_trip (config);
  }
  for (gsize i = 0; i < G_N_ELEMENTS (known_options); i++) {
    g_autoptr(GError) error = NULL;
    if (smolvm_call_check_options (dict, known_options[i], &error))
      (void) smolvm_call_option_bool (dict, known_options[i][0] != NULL ? known_options[i][0] : "x");
    else
      g_assert_nonnull (error);
  }
  {
    g_autoptr(JsonNode) network = smolvm_string_dict_to_json (dict);
    g_autoptr(GVariant) back =
      g_variant_ref_sink (smolvm_string_dict_from_json (json_node_get_object (network)));
    g_assert_true (g_variant_is_of_type (back, G_VARIANT_TYPE_VARDICT));
  }
  return 0;
}
