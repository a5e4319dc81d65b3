namespace switchyard::certs {

const char* version() {
  return "0.1.0";
}

}  // namespace switchyard::certs
