// The ULX3S's SDRAM as the board has it, for simulation: LiteDRAM's generated controller
// (rtl/boards/litedram_ulx3s.v, with models of the ECP5 cells for its I/O registers and
// buffers) wired to the behavioural chip (sdram_chip.v). The chip's clock is the inverted
// system clock, as a board gives it (a DDR output of a clock 180 degrees from the system's):
// commands and write data leave the controller's output registers at a rising system edge and
// are sampled half a period later; read data is sampled by the controller's input registers at
// the rising edge between two of the chip's. The bench's reset is a power cycle of the board:
// it starts the chip model from power-up too (a controller reset alone stops refreshes, which a
// chip holding data would rightly report).
//
// With `self_init` high the board's own SdramInitializer (generated from
// convhw/gateware/sdram_initializer.py) drives the controller's registers out of reset, as a
// bitstream will; low, the testbench does (the `ctrl_*` port).
`timescale 1ns / 1ps

module sdram_ulx3s #(
    parameter integer CLK_PERIOD_PS = 16666,
    parameter integer STORED_ROWS   = 64
) (
    input  wire        clk,
    input  wire        rst,
    input  wire        self_init,
    output wire        self_init_done,
    output wire        self_init_error,
    output wire        init_done,
    output wire        init_error,
    // the controller's registers (LiteDRAM's wb_ctrl: 32-bit words, word addresses)
    input  wire [29:0] ctrl_adr,
    input  wire [31:0] ctrl_dat_w,
    output wire [31:0] ctrl_dat_r,
    input  wire [3:0]  ctrl_sel,
    input  wire        ctrl_cyc,
    input  wire        ctrl_stb,
    input  wire        ctrl_we,
    output wire        ctrl_ack,
    output wire        ctrl_err,
    // the user port (32-bit words, word addresses)
    input  wire [22:0] user_adr,
    input  wire [31:0] user_dat_w,
    output wire [31:0] user_dat_r,
    input  wire [3:0]  user_sel,
    input  wire        user_cyc,
    input  wire        user_stb,
    input  wire        user_we,
    output wire        user_ack,
    output wire        user_err,
    // the engine's memory port (convhw.gateware.memory_port), through LiteDramMaster onto the
    // controller's native port
    input  wire [31:0] mp_read_cmd_addr,
    input  wire [7:0]  mp_read_cmd_len,
    input  wire        mp_read_cmd_valid,
    output wire        mp_read_cmd_ready,
    output wire [63:0] mp_read_data,
    output wire        mp_read_last,
    output wire        mp_read_error,
    output wire        mp_read_valid,
    input  wire        mp_read_ready,
    input  wire [31:0] mp_write_cmd_addr,
    input  wire [7:0]  mp_write_cmd_len,
    input  wire        mp_write_cmd_valid,
    output wire        mp_write_cmd_ready,
    input  wire [63:0] mp_write_data,
    input  wire [7:0]  mp_write_strb,
    input  wire        mp_write_last,
    input  wire        mp_write_valid,
    output wire        mp_write_ready,
    output wire        mp_write_resp_error,
    output wire        mp_write_resp_valid,
    input  wire        mp_write_resp_ready,
    // the chip's checks and counts
    output wire [31:0] violations,
    output wire [31:0] refreshes,
    output wire [31:0] reads,
    output wire [31:0] writes,
    output wire        chip_initialised
);
    wire [12:0] a;
    wire [1:0]  ba, dm;
    wire        cas_n, cke, cs_n, ras_n, we_n;
    wire [15:0] dq;
    wire        user_clk, user_rst;

    wire [29:0] i_adr;
    wire [31:0] i_dat_w;
    wire [3:0]  i_sel;
    wire        i_cyc, i_stb, i_we;
    wire [29:0] c_adr   = self_init ? i_adr : ctrl_adr;
    wire [31:0] c_dat_w = self_init ? i_dat_w : ctrl_dat_w;
    wire [3:0]  c_sel   = self_init ? i_sel : ctrl_sel;
    wire        c_cyc   = self_init ? i_cyc : ctrl_cyc;
    wire        c_stb   = self_init ? i_stb : ctrl_stb;
    wire        c_we    = self_init ? i_we : ctrl_we;

    sdram_initializer initializer (
        .clk(clk), .rst(rst | ~self_init),
        .bus__adr(i_adr), .bus__dat_w(i_dat_w), .bus__sel(i_sel), .bus__cyc(i_cyc),
        .bus__stb(i_stb), .bus__we(i_we), .bus__dat_r(ctrl_dat_r),
        .bus__ack(self_init & ctrl_ack), .bus__err(self_init & ctrl_err),
        .done(self_init_done), .error(self_init_error)
    );

    wire [21:0] n_cmd_addr;
    wire        n_cmd_valid, n_cmd_we, n_cmd_ready;
    wire [63:0] n_wdata_data, n_rdata_data;
    wire [7:0]  n_wdata_we;
    wire        n_wdata_valid, n_wdata_ready, n_rdata_valid, n_rdata_ready;

    litedram_master master (
        .clk(clk), .rst(rst),
        .port__read_cmd__payload({mp_read_cmd_len, mp_read_cmd_addr}),
        .port__read_cmd__valid(mp_read_cmd_valid), .port__read_cmd__ready(mp_read_cmd_ready),
        .port__read_data__payload({mp_read_error, mp_read_last, mp_read_data}),
        .port__read_data__valid(mp_read_valid), .port__read_data__ready(mp_read_ready),
        .port__write_cmd__payload({mp_write_cmd_len, mp_write_cmd_addr}),
        .port__write_cmd__valid(mp_write_cmd_valid), .port__write_cmd__ready(mp_write_cmd_ready),
        .port__write_data__payload({mp_write_last, mp_write_strb, mp_write_data}),
        .port__write_data__valid(mp_write_valid), .port__write_data__ready(mp_write_ready),
        .port__write_resp__payload(mp_write_resp_error),
        .port__write_resp__valid(mp_write_resp_valid),
        .port__write_resp__ready(mp_write_resp_ready),
        .native__cmd_valid(n_cmd_valid), .native__cmd_we(n_cmd_we),
        .native__cmd_addr(n_cmd_addr), .native__cmd_ready(n_cmd_ready),
        .native__wdata_valid(n_wdata_valid), .native__wdata_data(n_wdata_data),
        .native__wdata_we(n_wdata_we), .native__wdata_ready(n_wdata_ready),
        .native__rdata_valid(n_rdata_valid), .native__rdata_data(n_rdata_data),
        .native__rdata_ready(n_rdata_ready)
    );

    litedram_ulx3s controller (
        .clk(clk), .rst(rst), .init_done(init_done), .init_error(init_error),
        .sdram_a(a), .sdram_ba(ba), .sdram_cas_n(cas_n), .sdram_cke(cke), .sdram_cs_n(cs_n),
        .sdram_dm(dm), .sdram_dq(dq), .sdram_ras_n(ras_n), .sdram_we_n(we_n),
        .user_clk(user_clk), .user_rst(user_rst),
        .user_port_wishbone_0_adr(user_adr), .user_port_wishbone_0_dat_w(user_dat_w),
        .user_port_wishbone_0_dat_r(user_dat_r), .user_port_wishbone_0_sel(user_sel),
        .user_port_wishbone_0_cyc(user_cyc), .user_port_wishbone_0_stb(user_stb),
        .user_port_wishbone_0_we(user_we), .user_port_wishbone_0_ack(user_ack),
        .user_port_wishbone_0_err(user_err),
        .user_port_native_0_cmd_addr(n_cmd_addr), .user_port_native_0_cmd_valid(n_cmd_valid),
        .user_port_native_0_cmd_we(n_cmd_we), .user_port_native_0_cmd_ready(n_cmd_ready),
        .user_port_native_0_wdata_data(n_wdata_data),
        .user_port_native_0_wdata_valid(n_wdata_valid),
        .user_port_native_0_wdata_we(n_wdata_we),
        .user_port_native_0_wdata_ready(n_wdata_ready),
        .user_port_native_0_rdata_data(n_rdata_data),
        .user_port_native_0_rdata_valid(n_rdata_valid),
        .user_port_native_0_rdata_ready(n_rdata_ready),
        .wb_ctrl_adr(c_adr), .wb_ctrl_dat_w(c_dat_w), .wb_ctrl_dat_r(ctrl_dat_r),
        .wb_ctrl_sel(c_sel), .wb_ctrl_cyc(c_cyc), .wb_ctrl_stb(c_stb),
        .wb_ctrl_we(c_we), .wb_ctrl_ack(ctrl_ack), .wb_ctrl_err(ctrl_err),
        .wb_ctrl_bte(2'b00), .wb_ctrl_cti(3'b000)
    );

    sdram_chip #(.CLK_PERIOD_PS(CLK_PERIOD_PS), .STORED_ROWS(STORED_ROWS)) chip (
        .clk(~clk), .power_on(rst), .cke(cke), .cs_n(cs_n), .ras_n(ras_n), .cas_n(cas_n), .we_n(we_n),
        .ba(ba), .a(a), .dqm(dm), .dq(dq),
        .violations(violations), .refreshes(refreshes), .reads(reads), .writes(writes),
        .initialised(chip_initialised)
    );
endmodule
