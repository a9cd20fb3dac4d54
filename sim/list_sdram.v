// The list engine on the ULX3S's SDRAM, for simulation: ListEngine with its memory port bare
// (list_engine.v, configuration list-wishbone) -> LiteDramMaster -> LiteDRAM's native port;
// LiteDRAM initialised out of reset by SdramInitializer; the host's Wishbone port of LiteDRAM
// (`user_*`) loads the list's image and reads the results, the list engine's control port
// (`ctrl__*`) starts it. The chip (sdram_chip.v) is clocked by the inverted system clock, as in
// sdram_ulx3s.v; the bench's reset is a power cycle.
`timescale 1ns / 1ps

module list_sdram #(
    parameter integer CLK_PERIOD_PS = 16666,
    parameter integer STORED_ROWS   = 64
) (
    input  wire        clk,
    input  wire        rst,
    output wire        ready,              // the initialiser is done and the controller too
    output wire        init_error,
    // the list engine's control port (Wishbone classic, word addresses)
    input  wire [9:0]  ctrl__adr,
    input  wire [31:0] ctrl__dat_w,
    output wire [31:0] ctrl__dat_r,
    input  wire [3:0]  ctrl__sel,
    input  wire        ctrl__cyc,
    input  wire        ctrl__stb,
    input  wire        ctrl__we,
    output wire        ctrl__ack,
    output wire        ctrl__err,
    output wire        irq,
    output wire        busy,
    // the host's port into the SDRAM (32-bit words, word addresses)
    input  wire [22:0] user_adr,
    input  wire [31:0] user_dat_w,
    output wire [31:0] user_dat_r,
    input  wire [3:0]  user_sel,
    input  wire        user_cyc,
    input  wire        user_stb,
    input  wire        user_we,
    output wire        user_ack,
    output wire        user_err,
    output wire [31:0] violations
);
    wire [12:0] a;
    wire [1:0]  ba, dm;
    wire        cas_n, cke, cs_n, ras_n, we_n;
    wire [15:0] dq;
    wire        user_clk, user_rst, init_done, litedram_init_error, init_finished;

    wire [29:0] i_adr;
    wire [31:0] i_dat_w, i_dat_r;
    wire [3:0]  i_sel;
    wire        i_cyc, i_stb, i_we, i_ack, i_err;

    sdram_initializer initializer (
        .clk(clk), .rst(rst),
        .bus__adr(i_adr), .bus__dat_w(i_dat_w), .bus__sel(i_sel), .bus__cyc(i_cyc),
        .bus__stb(i_stb), .bus__we(i_we), .bus__dat_r(i_dat_r), .bus__ack(i_ack),
        .bus__err(i_err), .done(init_finished), .error(init_error)
    );
    assign ready = init_finished & init_done;

    wire [39:0] rc_payload, wc_payload;
    wire [65:0] rd_payload;
    wire [72:0] wd_payload;
    wire        rc_valid, rc_ready, rd_valid, rd_ready, wc_valid, wc_ready;
    wire        wd_valid, wd_ready, wr_payload, wr_valid, wr_ready;

    list_engine engine (
        .clk(clk), .rst(rst),
        .ctrl__adr(ctrl__adr), .ctrl__dat_w(ctrl__dat_w), .ctrl__dat_r(ctrl__dat_r),
        .ctrl__sel(ctrl__sel), .ctrl__cyc(ctrl__cyc), .ctrl__stb(ctrl__stb),
        .ctrl__we(ctrl__we), .ctrl__ack(ctrl__ack), .ctrl__err(ctrl__err),
        .mem__read_cmd__payload(rc_payload), .mem__read_cmd__valid(rc_valid),
        .mem__read_cmd__ready(rc_ready),
        .mem__read_data__payload(rd_payload), .mem__read_data__valid(rd_valid),
        .mem__read_data__ready(rd_ready),
        .mem__write_cmd__payload(wc_payload), .mem__write_cmd__valid(wc_valid),
        .mem__write_cmd__ready(wc_ready),
        .mem__write_data__payload(wd_payload), .mem__write_data__valid(wd_valid),
        .mem__write_data__ready(wd_ready),
        .mem__write_resp__payload(wr_payload), .mem__write_resp__valid(wr_valid),
        .mem__write_resp__ready(wr_ready),
        .irq(irq), .busy(busy)
    );

    wire [21:0] n_cmd_addr;
    wire        n_cmd_valid, n_cmd_we, n_cmd_ready;
    wire [63:0] n_wdata_data, n_rdata_data;
    wire [7:0]  n_wdata_we;
    wire        n_wdata_valid, n_wdata_ready, n_rdata_valid, n_rdata_ready;

    litedram_master master (
        .clk(clk), .rst(rst),
        .port__read_cmd__payload(rc_payload), .port__read_cmd__valid(rc_valid),
        .port__read_cmd__ready(rc_ready),
        .port__read_data__payload(rd_payload), .port__read_data__valid(rd_valid),
        .port__read_data__ready(rd_ready),
        .port__write_cmd__payload(wc_payload), .port__write_cmd__valid(wc_valid),
        .port__write_cmd__ready(wc_ready),
        .port__write_data__payload(wd_payload), .port__write_data__valid(wd_valid),
        .port__write_data__ready(wd_ready),
        .port__write_resp__payload(wr_payload), .port__write_resp__valid(wr_valid),
        .port__write_resp__ready(wr_ready),
        .native__cmd_valid(n_cmd_valid), .native__cmd_we(n_cmd_we),
        .native__cmd_addr(n_cmd_addr), .native__cmd_ready(n_cmd_ready),
        .native__wdata_valid(n_wdata_valid), .native__wdata_data(n_wdata_data),
        .native__wdata_we(n_wdata_we), .native__wdata_ready(n_wdata_ready),
        .native__rdata_valid(n_rdata_valid), .native__rdata_data(n_rdata_data),
        .native__rdata_ready(n_rdata_ready)
    );

    litedram_ulx3s controller (
        .clk(clk), .rst(rst), .init_done(init_done), .init_error(litedram_init_error),
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
        .wb_ctrl_adr(i_adr), .wb_ctrl_dat_w(i_dat_w), .wb_ctrl_dat_r(i_dat_r),
        .wb_ctrl_sel(i_sel), .wb_ctrl_cyc(i_cyc), .wb_ctrl_stb(i_stb),
        .wb_ctrl_we(i_we), .wb_ctrl_ack(i_ack), .wb_ctrl_err(i_err),
        .wb_ctrl_bte(2'b00), .wb_ctrl_cti(3'b000)
    );

    wire [31:0] refreshes, reads, writes;
    wire        chip_initialised;
    sdram_chip #(.CLK_PERIOD_PS(CLK_PERIOD_PS), .STORED_ROWS(STORED_ROWS)) chip (
        .clk(~clk), .power_on(rst), .cke(cke), .cs_n(cs_n), .ras_n(ras_n), .cas_n(cas_n),
        .we_n(we_n), .ba(ba), .a(a), .dqm(dm), .dq(dq),
        .violations(violations), .refreshes(refreshes), .reads(reads), .writes(writes),
        .initialised(chip_initialised)
    );
endmodule
